"""Pure audio maths: arrays in, arrays out. No file I/O here; the stages do that."""
