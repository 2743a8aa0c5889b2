"""Service designs compared with the project's service at 0.25 vCPU (never deployed)."""
