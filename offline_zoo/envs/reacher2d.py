"""Reacher2d: the LaMo paper's sparse-reward two-joint reacher as a gymnasium ``MujocoEnv``.

A planar arm (upper arm 0.6, forearm 0.4, fingertip 0.45 past the elbow) must bring its fingertip
to a target drawn at random at every reset. The physics runs at 0.01 s and every action is
repeated ``frame_skip = 15`` times, so one agent step lasts ``dt = 0.15`` s. Episodes last 100 agent
steps (the ``TimeLimit`` of the registration) and never terminate early.

Reward (sparse): ``1.0`` when the **L1** distance ``|dx| + |dy|`` between fingertip and target is
below ``0.1`` after the step, else ``0.0``. The normalized score is the return (random 0, expert 100).

Observation, 12 float64 values (the layout of the reacher the Decision Transformer / LaMo
experiments used, so that data of that environment lines up index by index):

======  ==============================================================================
index   meaning
======  ==============================================================================
0, 1    sin(shoulder angle), sin(elbow angle)
2, 3    cos(shoulder angle), cos(elbow angle)
4, 5    dt * joint velocities (rad per agent step: shoulder, elbow)
6, 7    fingertip position (x, y)
8, 9    target position (x, y)
10, 11  fingertip - target (x, y)
======  ==============================================================================

Action: 2 torques in ``[-1, 1]`` (shoulder, elbow); actions outside are clipped.

Reset: both joint angles uniform in ``[-2, 2]`` rad, velocities zero; the target uniform (by area)
in the annulus ``0.5 <= |target| <= 1.0`` around the shoulder, which the arm reaches everywhere
(its workspace is the annulus 0.15 .. 1.05 with the elbow limited to +-2.8 rad). Randomness comes
only from ``reset(seed=...)`` (``self.np_random``): the same seed gives the same episode.

    >>> import gymnasium as gym
    >>> from offline_zoo.envs import register_envs
    >>> register_envs()
    >>> env = gym.make("offline_zoo/Reacher2d-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, env.action_space.shape
    ((12,), (2,))
"""

from __future__ import annotations

import os
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco import MujocoEnv

__all__ = ["Reacher2dEnv", "REACHER2D_ENV_ID", "REACHER2D_MAX_EPISODE_STEPS", "XML_PATH"]

#: gymnasium id under which `offline_zoo.envs.register_envs` registers the environment.
REACHER2D_ENV_ID = "offline_zoo/Reacher2d-v0"
#: episode length of the registration (agent steps).
REACHER2D_MAX_EPISODE_STEPS = 100
#: the MuJoCo model shipped with the package.
XML_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "reacher2d.xml")


_CAMERA = {"distance": 3.0, "elevation": -90.0, "azimuth": 90.0, "lookat": np.zeros(3)}


class Reacher2dEnv(MujocoEnv, utils.EzPickle):
    """Sparse-reward 2-joint planar reacher (see the module docstring for the full specification).

    Args:
        frame_skip: physics steps per agent step (15 in the paper: ``dt = 0.15`` s).
        success_threshold: L1 fingertip-target distance below which a step earns reward 1.
        target_radius_range: ``(r_min, r_max)`` of the annulus the target is drawn from.
        init_qpos_range: joint angles at reset are uniform in ``[-init_qpos_range, init_qpos_range]``.
        **kwargs: passed to `gymnasium.envs.mujoco.MujocoEnv` (``render_mode``, ``width``...).

    Examples:
        >>> env = Reacher2dEnv()
        >>> obs, _ = env.reset(seed=1)
        >>> obs, reward, terminated, truncated, info = env.step(np.zeros(2))
        >>> reward in (0.0, 1.0), terminated
        (True, False)
    """

    metadata = {
        "render_modes": ["human", "rgb_array", "depth_array"],
        # MujocoEnv checks render_fps == round(1 / dt); recomputed per instance below.
        "render_fps": 7,
    }

    #: link lengths used by `forward_kinematics` / `inverse_kinematics` (match the XML).
    UPPER_ARM = 0.6
    FOREARM_TO_TIP = 0.45
    ELBOW_LIMIT = 2.8

    def __init__(
        self,
        frame_skip: int = 15,
        success_threshold: float = 0.1,
        target_radius_range: tuple[float, float] = (0.5, 1.0),
        init_qpos_range: float = 2.0,
        **kwargs: Any,
    ):
        if int(frame_skip) < 1:
            raise ValueError(f"frame_skip must be a positive integer, got {frame_skip!r}")
        r_min, r_max = (float(r) for r in target_radius_range)
        reach_min = abs(self.UPPER_ARM - self.FOREARM_TO_TIP)
        reach_max = self.UPPER_ARM + self.FOREARM_TO_TIP
        if not (reach_min <= r_min <= r_max <= reach_max):
            raise ValueError(
                f"target_radius_range={target_radius_range!r} must satisfy "
                f"{reach_min:.2f} <= r_min <= r_max <= {reach_max:.2f} (the arm's reach)"
            )
        utils.EzPickle.__init__(
            self, frame_skip, success_threshold, target_radius_range, init_qpos_range, **kwargs
        )
        self.success_threshold = float(success_threshold)
        self.target_radius_range = (r_min, r_max)
        self.init_qpos_range = float(init_qpos_range)
        # per-instance metadata so that a non-default frame_skip passes MujocoEnv's render_fps check
        self.metadata = dict(self.metadata)
        self.metadata["render_fps"] = int(np.round(1.0 / (0.01 * int(frame_skip))))
        observation_space = spaces.Box(low=-np.inf, high=np.inf, shape=(12,), dtype=np.float64)
        MujocoEnv.__init__(
            self,
            XML_PATH,
            int(frame_skip),
            observation_space=observation_space,
            default_camera_config=_CAMERA,
            **kwargs,
        )
        self._fingertip_site = self.model.site("fingertip").id
        self._target_body = self.model.body("target").id
        self._target_mocap = int(self.model.body_mocapid[self._target_body])

    # --- geometry -------------------------------------------------------------------------------
    @property
    def fingertip_xy(self) -> np.ndarray:
        """Current fingertip position (x, y) in the plane.

        Examples:
            >>> env = Reacher2dEnv(); _ = env.reset(seed=0)
            >>> env.fingertip_xy.shape
            (2,)
        """
        return self.data.site_xpos[self._fingertip_site][:2].copy()

    @property
    def target_xy(self) -> np.ndarray:
        """Current target position (x, y) in the plane.

        Examples:
            >>> env = Reacher2dEnv(); _ = env.reset(seed=0)
            >>> 0.5 <= float(np.linalg.norm(env.target_xy)) <= 1.0
            True
        """
        return self.data.mocap_pos[self._target_mocap][:2].copy()

    def set_target(self, xy) -> np.ndarray:
        """Move the target to ``xy`` (within the episode) and return the new observation.

        Examples:
            >>> env = Reacher2dEnv(); _ = env.reset(seed=0)
            >>> obs = env.set_target([0.7, 0.0])
            >>> obs[8:10].tolist()
            [0.7, 0.0]
        """
        xy = np.asarray(xy, dtype=np.float64).reshape(-1)
        if xy.shape != (2,):
            raise ValueError(f"target must be 2 numbers (x, y), got shape {xy.shape}")
        self.data.mocap_pos[self._target_mocap][:2] = xy
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs()

    def l1_distance(self) -> float:
        """L1 distance ``|dx| + |dy|`` between fingertip and target (what the reward thresholds).

        Examples:
            >>> env = Reacher2dEnv(); _ = env.reset(seed=0)
            >>> env.l1_distance() >= 0.0
            True
        """
        return float(np.abs(self.fingertip_xy - self.target_xy).sum())

    @classmethod
    def forward_kinematics(cls, qpos) -> np.ndarray:
        """Fingertip (x, y) for joint angles ``(shoulder, elbow)``.

        Examples:
            >>> Reacher2dEnv.forward_kinematics([0.0, 0.0]).round(3).tolist()
            [1.05, 0.0]
        """
        q1, q2 = np.asarray(qpos, dtype=np.float64)[:2]
        return np.array(
            [
                cls.UPPER_ARM * np.cos(q1) + cls.FOREARM_TO_TIP * np.cos(q1 + q2),
                cls.UPPER_ARM * np.sin(q1) + cls.FOREARM_TO_TIP * np.sin(q1 + q2),
            ]
        )

    @classmethod
    def inverse_kinematics(cls, xy, elbow_up: bool = True) -> np.ndarray:
        """Joint angles ``(shoulder, elbow)`` that put the fingertip exactly at ``xy``.

        Raises a ValueError when ``xy`` is outside the arm's reach. ``elbow_up`` picks the
        positive-elbow solution (the other one mirrors it).

        Examples:
            >>> q = Reacher2dEnv.inverse_kinematics([0.3, 0.6])
            >>> Reacher2dEnv.forward_kinematics(q).round(6).tolist()
            [0.3, 0.6]
        """
        x, y = np.asarray(xy, dtype=np.float64).reshape(-1)[:2]
        l1, l2 = cls.UPPER_ARM, cls.FOREARM_TO_TIP
        r2 = x * x + y * y
        c2 = (r2 - l1 * l1 - l2 * l2) / (2.0 * l1 * l2)
        if not -1.0 <= c2 <= 1.0:
            raise ValueError(
                f"point ({x:.3f}, {y:.3f}) at distance {np.sqrt(r2):.3f} is outside the arm's reach "
                f"[{abs(l1 - l2):.2f}, {l1 + l2:.2f}]"
            )
        q2 = float(np.arccos(c2)) * (1.0 if elbow_up else -1.0)
        if abs(q2) > cls.ELBOW_LIMIT:
            raise ValueError(
                f"point ({x:.3f}, {y:.3f}) needs elbow angle {q2:.3f}, beyond the limit +-{cls.ELBOW_LIMIT}"
            )
        q1 = float(np.arctan2(y, x) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2)))
        q1 = float((q1 + np.pi) % (2.0 * np.pi) - np.pi)
        return np.array([q1, q2])

    # --- gymnasium API --------------------------------------------------------------------------
    def step(self, action):
        """Apply the torques for ``frame_skip`` physics steps; returns the gymnasium 5-tuple.

        ``info`` holds ``distance_l1`` and ``is_success`` (reward == 1). ``terminated`` is always
        False; the 100-step limit comes from the registration's ``TimeLimit``.

        Examples:
            >>> env = Reacher2dEnv(); _ = env.reset(seed=0)
            >>> sorted(env.step(np.zeros(2))[4])
            ['distance_l1', 'is_success']
        """
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (2,):
            raise ValueError(f"Reacher2d takes 2 torques, got an action of shape {action.shape}")
        self.do_simulation(action, self.frame_skip)
        # mj_step leaves positions (xpos, site_xpos) one physics step behind qpos: refresh them so
        # the reward and the observation see the fingertip where the joints actually are
        mujoco.mj_kinematics(self.model, self.data)
        dist = self.l1_distance()
        success = dist < self.success_threshold
        reward = 1.0 if success else 0.0
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), reward, False, False, {"distance_l1": dist, "is_success": bool(success)}

    def reset_model(self) -> np.ndarray:
        """Draw joint angles and the target from ``self.np_random`` (seeded by ``reset(seed=...)``).

        Examples:
            >>> env = Reacher2dEnv()
            >>> bool(np.allclose(env.reset(seed=3)[0], env.reset(seed=3)[0]))
            True
        """
        lim = self.init_qpos_range
        qpos = self.np_random.uniform(low=-lim, high=lim, size=self.model.nq)
        qvel = np.zeros(self.model.nv)
        r_min, r_max = self.target_radius_range
        # uniform by area in the annulus: r^2 uniform in [r_min^2, r_max^2]
        radius = np.sqrt(self.np_random.uniform(r_min * r_min, r_max * r_max))
        angle = self.np_random.uniform(-np.pi, np.pi)
        self.data.mocap_pos[self._target_mocap][:2] = (radius * np.cos(angle), radius * np.sin(angle))
        self.set_state(qpos, qvel)  # runs mj_forward: fingertip and target positions are current
        return self._get_obs()

    def _get_obs(self) -> np.ndarray:
        theta = self.data.qpos[:2]
        tip = self.fingertip_xy
        target = self.data.xpos[self._target_body][:2]
        return np.concatenate(
            [np.sin(theta), np.cos(theta), self.dt * self.data.qvel[:2], tip, target, tip - target]
        ).astype(np.float64)
