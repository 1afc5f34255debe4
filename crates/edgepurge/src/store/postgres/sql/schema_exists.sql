SELECT to_regclass('edgepurge_schema') IS NOT NULL
