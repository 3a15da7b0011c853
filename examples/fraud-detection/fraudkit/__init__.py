"""The fraud-detection example's own code: the transaction simulator, the data checks and the
features. The stage notebooks import it; tests import it too."""
