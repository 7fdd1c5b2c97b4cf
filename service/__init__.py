"""HTTP inference service for the CNN, SimpleRNN and LSTM classifiers, served by two backends each.

``service.app:app`` is the FastAPI application; ``python -m service`` runs it under uvicorn with the
settings of :class:`service.settings.Settings` (environment variables, one place).
"""
