"""letterbatch: recipients.yaml -> footnoted letters on a shared letterhead.

The pipeline, one module per stage: ``load`` (YAML -> validated batch),
``compose`` (batch -> each letter's LaTeX, via ``markup`` and ``latex``),
``compile`` (LaTeX -> PDF with pdflatex), ``merge`` (PDFs -> bundle).
``build`` runs the stages for a whole batch.
"""
__version__ = "0.1.0"
