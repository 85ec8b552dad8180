"""Page code of the Streamlit app (``streamlit_app.py``): drawing and wiring only, services do the work."""
