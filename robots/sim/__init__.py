"""The simulated household (MuJoCo + robosuite's PandaOmron), its tasks and a scripted expert.

Rendering is headless: MUJOCO_GL defaults to EGL here, before anything imports mujoco, because the GL backend is
chosen once at mujoco's import and a wrong guess (GLFW without a display) fails only at the first frame.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] == "egl":
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
