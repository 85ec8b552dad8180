"""Feedback: ingest, reviews and labels, review queues and active-learning strategies."""
