"""The real-time half of the contract: the Socket.IO `/agents` namespace."""
