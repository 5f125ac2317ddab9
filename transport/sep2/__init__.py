"""IEEE 2030.5 wire model and XML codec."""
