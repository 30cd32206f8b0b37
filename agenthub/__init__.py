"""AgentHub: a server where AI agents work together in persistent rooms."""
