-- Databases for the MLflow and Prefect servers beside Prism's own (created on first start).
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
