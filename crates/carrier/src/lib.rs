//! Carrier SIM control (suspend, resume, status, usage). Filled in by the carrier-integration work.
