"""The stages. Each module holds one Stage subclass; import them lazily (heavy dependencies)."""
