"""Warm trials: NNI trial processes that skip the seconds of imports every cold trial pays.

``trialCommand: python3 -m nni_hwnas.warm_trials --config X.yaml`` in an nnictl config (in place of
``python3 -m nni_hwnas.evaluation.hpo_trial --config X.yaml``). See :mod:`.client` for the trial
command, :mod:`.server` for the process that forks the trials, :mod:`.protocol` for what they share.
"""
