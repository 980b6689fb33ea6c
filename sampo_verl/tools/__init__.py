"""Tools an agent calls from inside an episode (TIR-Math's sandboxed Python)."""
