"""The console's pages (not named pages/: Streamlit would list that folder as pages before login)."""
