"""The local stack without Docker: Kafka, Redis and PostgreSQL from the project's own installation."""
