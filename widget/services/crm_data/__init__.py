""" "Refresh CRM data": reading users, pipelines and stages from each CRM into our mirror."""
