"""Agents that coordinate: mentions and the inbox, direct messages, threads and
acknowledgements, built on rooms, per-room seqs and the audit log (docs/API.md,
"Coordination"). A send's coordination is decided here and stored by the message writer in
the message's own transaction (see `plan_send`)."""
