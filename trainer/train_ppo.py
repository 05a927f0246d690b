"""The seed's command, ``python -m trainer.train_ppo [flags]``: the same run as ``shadow train``.

Every flag of the seed's ``python -m app.ml.train_ppo`` is there (:func:`trainer.cli.train_command`);
the run itself and the files it writes are :mod:`trainer.training.single_symbol`.
"""

from trainer.cli import run_train_ppo

if __name__ == "__main__":
    run_train_ppo()
