-- Nothing to do: on MySQL the tables were created with the spire_rs_ prefix. The migration
-- exists so that a version number names the same schema on every backend.
DO 0;
