"""The streaming engine: pure asyncio domain code (no Starlette, no Textual)."""
