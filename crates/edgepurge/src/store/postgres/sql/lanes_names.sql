SELECT name FROM lanes ORDER BY name
