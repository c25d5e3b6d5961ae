"""The Streamlit operator console. Talks to the API over HTTP/WebSocket only."""
