"""The π₀.₅ model and everything that serves or trains it. Imports nothing from agent, robots or ui."""
