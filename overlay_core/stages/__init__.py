"""The stages of the reasoning loop, one small module per kind (see :mod:`overlay_core.reasoner`):
:mod:`~.ranking` (passages), :mod:`~.prompting` (the selector's prompt), :mod:`~.reading` (sentences that bear on
the question), :mod:`~.opening` (declining, the opening words, yes/no), :mod:`~.sources` (candidate sources),
:mod:`~.guards` (guards), :mod:`~.features` (features and the score); :mod:`~.base` holds what they share."""
