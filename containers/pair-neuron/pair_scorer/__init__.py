"""Duplicate-pair scoring for SageMaker Batch Transform: a sentence encoder traced per shape.

Runs on Python 3.10 (the Neuron deep-learning container's interpreter) as well as here.
"""
