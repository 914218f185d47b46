"""How clients on the network find this server without being told its address: HDHomeRun
discovery (UDP) and its control port (TCP), and SSDP/UPnP."""
