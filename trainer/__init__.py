"""The trainer: the seed's ``train_ppo`` command and the trainer commands (:mod:`trainer.cli`) on top of one
subpackage per concern: ``data``, ``jobs``, ``training``, ``evaluation``, ``tuning``, ``models``, ``retrain``."""
