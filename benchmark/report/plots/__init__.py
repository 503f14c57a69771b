"""Figures of a leaderboard: one public style module and one module per figure family."""
