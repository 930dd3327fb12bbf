"""The provider's Airflow plugin (:mod:`.confluence`) and the FastAPI app it mounts in the Airflow 3 API server."""
