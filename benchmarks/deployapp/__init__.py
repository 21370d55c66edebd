"""The app the deploy benchmark evolves: items, then items with an index over n."""
