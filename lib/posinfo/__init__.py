"""posinfo: the library behind the executable edition of "Global Pooling, More than Meets the
Eye: Position Information is Encoded Channel-Wise in CNNs" (Islam et al., ICCV 2021)."""
__version__ = "0.1.0"

from .checks import PROFILES  # noqa: E402,F401
from .settings import chapter_settings, default_profile  # noqa: E402,F401
