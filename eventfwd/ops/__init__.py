"""Operator models shared by the CLI and the web console: the fleet snapshot and paced bulk work."""
