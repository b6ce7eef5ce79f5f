"""Labels: branched rollouts from states of failed episodes, and the statistics they are judged by."""
