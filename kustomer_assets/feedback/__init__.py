"""The analysis-ready feedback table: one row per live conversation, everything joined."""
