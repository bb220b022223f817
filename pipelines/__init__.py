"""Domain core: dataset specs, the five steps, the runner and the CLI. Never imports Airflow."""
