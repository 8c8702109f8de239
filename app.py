"""Entry point: ``gunicorn app:app`` (see Procfile), or ``python app.py`` for a local server."""
import os

from automl import create_app

app = create_app()

if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
