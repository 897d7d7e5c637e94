"""The write side of moocsearch: documents in, a published, immutable index generation out."""
