"""LiteFrame model definition, also shipped as Hub remote code (flat folder, sibling imports only)."""
