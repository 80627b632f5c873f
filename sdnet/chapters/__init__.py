"""What the chapters compute from the results the stages wrote: the paper's numbers
(:mod:`~sdnet.chapters.paper`), the held-out protocol (:mod:`~sdnet.chapters.protocols`), the
verdict rules (:mod:`~sdnet.chapters.verdicts`, :mod:`~sdnet.chapters.layer_verdicts`), each
chapter's tables and verdicts (:mod:`~sdnet.chapters.classification`,
:mod:`~sdnet.chapters.noise_defenders`, :mod:`~sdnet.chapters.noise_report`,
:mod:`~sdnet.chapters.attack_report`) and every figure (:mod:`~sdnet.chapters.figures`).

They import the library (sdnet.csc, sdnet.analysis, ...), never the study or its stages: a
notebook hands them what it loaded.
"""
