"""What runs beside the agent, never in the server: the sidecar and its sources, the age
vault, dotenv files, `patina secrets run` and its ssh variant. It reaches the service over
HTTP only (service/client.py) and shares with it the secret-name rule and the scrubber."""
