"""Every workaround of NNI 3.0 behaviour, in one place (NNI 3.0, 2023, is the last release).

Each module says which NNI behaviour it works around and why; ``docs/nni-quirks.md`` holds the
facts behind them, as observed with nni 3.0 and torch 2.6+. The day NNI changes, look here.

=========================  ==========================================================  ============
quirk                      where                                                       applies to
=========================  ==========================================================  ============
Resume (4 fixes)           :mod:`.resume`: JSON checkpoints that also hold sets,         nni 3.0
                           tuner-only commands skipped, ``maxTrialNumber`` pushed,
                           manager ownership checked, checkpoint kept on failed resume
Wait for completion        :func:`.resume.wait_for_completion`                          nni 3.0
parameterId join           :func:`.rest.final_parameter_id`                             nni 3.0
0.0 vs 0                   :func:`.rest.declared_value`                                 nni 3.0
Terminal statuses          :data:`.rest.TERMINAL_STATUSES`                              nni 3.0
REST decoding              :func:`.rest.decode_metric`                                  nni 3.0
TPE minimises              :func:`.builtins.builtin_defaults`                           nni 3.0
Unseeded freeze            :func:`.freeze.reinitialise`                                 nni 3.0
Manager start timeout      :func:`.resume.wait_longer_for_manager`                      nni 3.0
=========================  ==========================================================  ============

Importing this package imports nothing of NNI; only :mod:`.resume` imports ``nni.nas``.
"""
