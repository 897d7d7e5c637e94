"""The read side of moocsearch: a published index generation in, ranked and cited passages out."""
