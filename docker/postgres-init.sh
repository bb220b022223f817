#!/bin/sh
# Creates govdata's two databases on the PostgreSQL server of docker-compose.yml:
#   airflow  Airflow's metadata database and the Celery result backend (role airflow)
#   govdata  the resource catalog, the exchange and its audit log       (role govdata)
# Each role owns its database and may connect to nothing else. The postgres image runs this once,
# when it initialises an empty data volume (/docker-entrypoint-initdb.d); to change a password
# later, use ALTER ROLE (docs/deployment.md). The passwords arrive as environment variables and
# are passed to psql as variables, so no quoting of their characters matters here.
set -eu

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set for the postgres service}"
: "${GOVDATA_DB_PASSWORD:?GOVDATA_DB_PASSWORD is not set for the postgres service}"

psql --no-psqlrc --set ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set airflow_password="$AIRFLOW_DB_PASSWORD" \
    --set govdata_password="$GOVDATA_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8';
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE airflow TO airflow;

CREATE ROLE govdata LOGIN PASSWORD :'govdata_password';
CREATE DATABASE govdata OWNER govdata ENCODING 'UTF8';
REVOKE ALL ON DATABASE govdata FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE govdata TO govdata;
SQL

# PostgreSQL 15+ no longer lets every role create objects in the public schema; each role owns
# its database, and here its public schema too, so migrations can create their tables.
for db in airflow govdata; do
    psql --no-psqlrc --set ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$db" \
        --command "ALTER SCHEMA public OWNER TO $db;"
done
echo "govdata: created the databases airflow and govdata"
