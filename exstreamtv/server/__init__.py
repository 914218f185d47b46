"""HTTP adapter of the engine (Starlette under uvicorn)."""
