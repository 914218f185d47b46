"""The guide's documented import paths (implementations live in ``exstreamtv.engine``)."""
