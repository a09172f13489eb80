from .checkpoint_safety import (CHECKPOINT_SAFE_GLOBALS,
                                safe_checkpoint_loading)
from .dist_utils import setup_cpu_distributed
from .launch import add_launch_args, load_tool_config, prepare_run

__all__ = ['setup_cpu_distributed', 'prepare_run', 'load_tool_config',
           'add_launch_args',
           'safe_checkpoint_loading', 'CHECKPOINT_SAFE_GLOBALS']
