"""Reports read from the store: leaderboard, statistics, Markdown tables, the AP effect and plots."""
