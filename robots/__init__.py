"""Robots: the robot interface, the safety layer, the simulated household and bridges to real robots.

Imports nothing from agent, policy or ui.
"""
