"""What is asked and how answers come back together.

``kinds`` (the task-kind interface and registry), one module per kind (``pairwise``,
``listwise``), ``pages`` (golden mixing), ``golden`` (given, synthetic and weaker-source golden
tasks), ``degrade`` (the synthetic copies) and ``aggregate`` (crowd-kit: MV / Dawid-Skene /
GLAD / MACE, Bradley-Terry). Nothing is imported here so that building tasks does not load crowd-kit.
"""
