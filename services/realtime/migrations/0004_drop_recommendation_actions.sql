-- recommendations.run.completed now carries each change with its previous action, so
-- realtime no longer keeps its own copy of the last action per ticker.
DROP TABLE recommendation_actions;
