"""MLflow-aware command lines, one per phase: parse -> resolve upstream -> call teachable -> log."""
