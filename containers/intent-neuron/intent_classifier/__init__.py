"""Query-intent classification: a BERT-class encoder with a linear head, traced per shape."""
