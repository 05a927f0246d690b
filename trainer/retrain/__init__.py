"""Scheduled retraining: the job, the child process that trains and gates a candidate, and the parent's runner."""
